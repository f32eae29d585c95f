//! What the runner owner allows: podman arguments that widen a container's reach need an
//! explicit `privileged: true`; images and services can be limited by globs.

/// Options whose mere presence widens the container's reach (host devices, mounts,
/// capabilities, security profiles, the host's environment, host files podman reads or
/// writes for it, other pods and podman's secrets, OCI runtime annotations).
const WIDENING_FLAGS: &[&str] = &[
    "--privileged",
    "--cap-add",
    "--security-opt",
    "--seccomp-policy",
    "--device",
    "--device-cgroup-rule",
    "--gpus",
    "--volume",
    "--mount",
    "--volumes-from",
    "--rootfs",
    "--group-add",
    "--env-host",
    "--env-file",
    "--secret",
    "--pod",
    "--pod-id-file",
    "--annotation",
    "--cgroup-parent",
    "--hooks-dir",
    "--init-path",
    "--cidfile",
    "--pidfile",
    "--conmon-pidfile",
    "--log-opt",
];

/// Namespace options that widen the reach when they join the host's (or another) namespace.
const NAMESPACE_FLAGS: &[&str] = &[
    "--pid",
    "--network",
    "--net",
    "--userns",
    "--ipc",
    "--uts",
    "--cgroupns",
];

/// The arguments in `args` that widen the container's reach, as written.
pub fn widening_args(args: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with("--") => (f, Some(v)),
            _ => (a.as_str(), None),
        };
        if WIDENING_FLAGS.contains(&flag) {
            found.push(a.clone());
        } else if NAMESPACE_FLAGS.contains(&flag) {
            let value = inline
                .map(str::to_string)
                .or_else(|| args.get(i + 1).cloned());
            if value.as_deref().is_some_and(joins_other_namespace) {
                found.push(match inline {
                    Some(_) => a.clone(),
                    None => format!("{a} {}", value.unwrap_or_default()),
                });
            }
        } else if a.starts_with('-') && !a.starts_with("--") && a[1..].contains('v') {
            // `-v`, `-v/host:/c`, or combined short flags with a volume
            found.push(a.clone());
        }
        i += 1;
    }
    found
}

/// A namespace value that joins the host's (or another) namespace, or a user-mode network
/// that reaches the host: slirp4netns with `allow_host_loopback=true`, pasta with options
/// (which can forward the host's ports into the container).
fn joins_other_namespace(v: &str) -> bool {
    v == "host"
        || v.starts_with("ns:")
        || v.starts_with("container:")
        || (v.starts_with("slirp4netns:") && v.contains("allow_host_loopback=true"))
        || v.starts_with("pasta:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        shell_words::split(s).unwrap()
    }

    #[test]
    fn arguments_that_widen_the_containers_reach_are_found() {
        for (args, expect) in [
            ("--privileged", vec!["--privileged"]),
            ("--cap-add SYS_ADMIN", vec!["--cap-add"]),
            ("--cap-add=NET_ADMIN", vec!["--cap-add=NET_ADMIN"]),
            ("--security-opt label=disable", vec!["--security-opt"]),
            ("--device /dev/fuse:rw", vec!["--device"]),
            ("-v /:/host", vec!["-v"]),
            ("-v/:/host", vec!["-v/:/host"]),
            ("--volume=/:/host", vec!["--volume=/:/host"]),
            ("--mount type=bind,src=/,dst=/h", vec!["--mount"]),
            ("--pid=host", vec!["--pid=host"]),
            ("--pid host", vec!["--pid host"]),
            ("--network=host", vec!["--network=host"]),
            ("--net host", vec!["--net host"]),
            ("--userns=host", vec!["--userns=host"]),
            ("--ipc=host", vec!["--ipc=host"]),
            (
                "--network ns:/proc/1/ns/net",
                vec!["--network ns:/proc/1/ns/net"],
            ),
            ("--env-host", vec!["--env-host"]),
            ("-itv /a:/b", vec!["-itv"]),
            ("--gpus all", vec!["--gpus"]),
            (
                "--annotation run.oci.keep_original_groups=1",
                vec!["--annotation"],
            ),
            (
                "--network slirp4netns:allow_host_loopback=true",
                vec!["--network slirp4netns:allow_host_loopback=true"],
            ),
            ("--network=pasta:-T,8080", vec!["--network=pasta:-T,8080"]),
            ("--rootfs /", vec!["--rootfs"]),
            ("--pod other-jobs-pod", vec!["--pod"]),
            ("--secret other-jobs-secret", vec!["--secret"]),
            ("--env-file /etc/shadow", vec!["--env-file"]),
            ("--pidfile /home/u/.bashrc", vec!["--pidfile"]),
        ] {
            assert_eq!(widening_args(&split(args)), expect, "{args}");
        }
    }

    #[test]
    fn ordinary_arguments_are_not_flagged() {
        for args in [
            "--env 'GREETING=hello world'",
            "--memory 2g --cpus 2",
            "--network=slirp4netns",
            "--network=slirp4netns:port_handler=slirp4netns",
            "--network=pasta",
            "--userns=keep-id",
            "--label a=b -e X=1",
            "--shm-size 1g --ulimit nofile=1024:1024",
        ] {
            assert!(widening_args(&split(args)).is_empty(), "{args}");
        }
    }
}
