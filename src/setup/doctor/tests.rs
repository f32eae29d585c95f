use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_failed_background_removal_is_a_warning_naming_the_job_and_the_fix() {
    assert!(removals_check(&[]).is_none(), "nothing to say: no line");
    let c = removals_check(&[(
        "pogo-r-1-0-abcd".to_string(),
        vec!["`podman rm -f` failed (exit 125): no space left on device".to_string()],
    )])
    .unwrap();
    assert_eq!(c.name, "removals");
    assert!(c.message.contains("1 job(s)"), "{}", c.message);
    assert!(
        c.message.contains("pogo-r-1-0-abcd: `podman rm -f` failed"),
        "{}",
        c.message
    );
    assert!(format!("{c:?}").contains("pogo gc"), "{c:?}");
}

#[test]
fn doctor_recommends_a_helper_image_until_one_is_set() {
    let env: HashMap<String, String> = [("HOME".to_string(), "/h".to_string())].into();
    let mut cfg = crate::config::finalize(crate::config::RawConfig::default(), None, &env).unwrap();
    let c = helper_image_check(&cfg);
    assert!(
        c.fix.as_deref().is_some_and(|f| f.contains("helper_image")),
        "{c:?}"
    );
    cfg.helper_image = Some("localhost/helper:1".into());
    assert!(helper_image_check(&cfg).fix.is_none());
}

#[test]
fn under_enforcing_selinux_tag_mounts_without_z_are_named() {
    use crate::podman::{selinux_from, Selinux};
    assert_eq!(selinux_from(None), Selinux::Disabled);
    assert_eq!(selinux_from(Some("1\n")), Selinux::Enforcing);
    assert_eq!(selinux_from(Some("0\n")), Selinux::Permissive);
    let env: HashMap<String, String> = [("HOME".to_string(), "/h".to_string())].into();
    let raw = crate::config::parse(
        "mounts:\n  - volume: /srv/keys:/keys:ro\n  - volume: /srv/data:/data:z\n",
        Path::new("/c.yaml"),
    )
    .unwrap();
    let cfg = crate::config::finalize(raw, None, &env).unwrap();
    let c = selinux_check(Selinux::Enforcing, &cfg);
    assert_eq!(c.status, Status::Warn);
    assert!(c.message.contains("mounts[0] (/srv/keys)"), "{c:?}");
    assert!(!c.message.contains("/srv/data"), "{c:?}");
    assert_eq!(selinux_check(Selinux::Disabled, &cfg).status, Status::Ok);
}

#[test]
fn netavark_without_iptables_or_nft_fails_as_root_and_warns_rootless() {
    let nft = Path::new("/usr/sbin/nft");
    assert_eq!(firewall_check("netavark", false, None).status, Status::Fail);
    assert!(firewall_check("netavark", false, None)
        .fix
        .is_some_and(|f| f.contains("apt-get install iptables nftables")));
    assert_eq!(firewall_check("netavark", true, None).status, Status::Warn);
    assert_eq!(
        firewall_check("netavark", false, Some(nft)).status,
        Status::Ok
    );
    assert_eq!(firewall_check("cni", false, None).status, Status::Ok);
}

#[test]
fn sub_ids_are_counted_by_name_or_uid() {
    let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\n";
    assert_eq!(sub_id_count(text, "alice", 1000), 65_536);
    assert_eq!(sub_id_count(text, "carol", 1001), 1000);
    assert_eq!(sub_id_count(text, "dave", 1002), 0);
}

#[test]
fn versions_parse_from_podman_output() {
    assert_eq!(parse_version("podman version 4.3.1"), Some((4, 3)));
    assert_eq!(parse_version("5.0.0-dev"), Some((5, 0)));
    assert_eq!(parse_version("garbage"), None);
}

#[test]
fn screen_shows_fix_under_problems_and_a_summary() {
    let checks = vec![
        ok("podman", "podman 4.3.1"),
        fail(
            "mounts",
            "mounts[0]: host path /x does not exist",
            "mkdir -p /x",
        ),
    ];
    let s = render(&checks, false);
    assert!(s.contains("✓ podman  podman 4.3.1\n"), "{s}");
    assert!(s.contains("✗ mounts  mounts[0]"), "{s}");
    assert!(s.contains("fix: mkdir -p /x\n"), "{s}");
    assert!(s.ends_with("1 problem(s) (✗), 0 warning(s) (⚠)\n"), "{s}");
}

#[test]
fn world_readable_auth_file_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("auth.json");
    std::fs::write(&p, "{\"auths\":{}}").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(auth_file_check(&p).status, Status::Fail);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(auth_file_check(&p).status, Status::Ok);
    std::fs::write(&p, "not json").unwrap();
    assert_eq!(auth_file_check(&p).status, Status::Fail);
}

#[test]
fn podman_info_decides_the_cgroups_storage_and_network_lines() {
    let user = UserInfo {
        name: "ci".into(),
        uid: 1000,
        gid: 1000,
        home: "/home/ci".into(),
    };
    let info = |version: &str, controllers: &[&str]| serde_json::json!({"host": {"cgroupVersion": version, "cgroupControllers": controllers}});
    let all = ["cpu", "memory", "pids"];
    let c = cgroups_check(&info("v1", &all), "5.4.2", true, &user);
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.message.contains("podman 5.4.2 deprecates it"),
        "{}",
        c.message
    );
    assert!(c
        .message
        .contains("rootless podman cannot apply resource limits"));
    assert_eq!(
        cgroups_check(&info("v1", &[]), "4.3.1", false, &user).status,
        Status::Ok
    );
    let c = cgroups_check(&info("v1", &[]), "4.3.1", true, &user);
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.message.contains("--memory, --cpus, --pids-limit"),
        "{}",
        c.message
    );
    let c = cgroups_check(&info("v2", &all), "4.3.1", true, &user);
    assert_eq!(c.status, Status::Ok);
    assert!(c.message.contains("work rootless"), "{}", c.message);
    let c = cgroups_check(&info("v2", &["cpu"]), "4.3.1", true, &user);
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.message.contains("memory, pids not delegated to ci"),
        "{}",
        c.message
    );
    assert!(c.fix.unwrap().contains("Delegate="));

    assert_eq!(storage_check("overlay").status, Status::Ok);
    assert_eq!(storage_check("vfs").status, Status::Warn);
    assert_eq!(storage_check("").status, Status::Warn);

    let none = |_: &str| String::new();
    let nothing: HashMap<String, String> = HashMap::from([("PATH".into(), "/nonexistent".into())]);
    let with = |p: &str| {
        let p = p.to_string();
        move |ptr: &str| {
            if ptr == "/host/slirp4netns/executable" {
                p.clone()
            } else {
                String::new()
            }
        }
    };
    if !Path::new("/usr/libexec/podman/slirp4netns").exists() {
        assert_eq!(network_check(true, &none, &nothing).status, Status::Fail);
    }
    assert_eq!(network_check(false, &none, &nothing).status, Status::Ok);
    let c = network_check(true, &with("/usr/bin/slirp4netns"), &nothing);
    assert!(c.message.contains("/usr/bin/slirp4netns"), "{}", c.message);
}
