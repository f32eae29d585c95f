use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.entry("HOME".into()).or_insert_with(|| "/home/u".into());
    m
}

fn load_str(text: &str, e: &HashMap<String, String>) -> Result<Config, ConfigError> {
    let p = PathBuf::from("/etc/pogo.yaml");
    let raw = parse(text, &p)?;
    let raw = apply_env(raw, e)?;
    finalize(raw, Some(p), e)
}

const ORIGINAL: &str = r#"
default_image: fedora:latest
working_dir: /home/runner
cache_dir: /home/runner/cache
auth_file: /home/runner/.docker-auth.json
mounts:
  - volume: /home/test/dir:/mnt/dir
    tags: [build, deploy]
  - volume: /home/test/fixtures:/mnt/fixtures
    tags: [test]
    readonly: true
  - volume: /srv/always:/mnt/always
extra_arguments:
  buildah:
    args: '--security-opt label=disable --security-opt seccomp=unconfined --device /dev/fuse:rw'
    privileged: true
"#;

#[test]
fn the_original_tools_config_keys_keep_their_meaning() {
    let c = load_str(ORIGINAL, &env(&[])).unwrap();
    assert_eq!(c.default_image.as_deref(), Some("fedora:latest"));
    assert_eq!(c.cache_dir, PathBuf::from("/home/runner/cache"));
    assert_eq!(c.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(c.services_wait_timeout, 30);
    assert_eq!(c.builds_dir, "/builds");
    assert_eq!(
        c.mounts[1].volume_arg(),
        "/home/test/fixtures:/mnt/fixtures:ro"
    );
    assert_eq!(
        c.extra_arguments[0].args,
        vec![
            "--security-opt",
            "label=disable",
            "--security-opt",
            "seccomp=unconfined",
            "--device",
            "/dev/fuse:rw"
        ]
    );
}

#[test]
fn environment_variables_override_file_values() {
    let e = env(&[
        ("POGO_DEFAULT_IMAGE", "alpine:3"),
        ("POGO_CACHE_DIR", "/var/cache/pogo"),
        ("POGO_PULL_POLICY", "never"),
        ("POGO_SERVICES_WAIT_TIMEOUT", "5"),
        ("POGO_AUTH_FILE", ""),
    ]);
    let c = load_str(ORIGINAL, &e).unwrap();
    assert_eq!(c.default_image.as_deref(), Some("alpine:3"));
    assert_eq!(c.cache_dir, PathBuf::from("/var/cache/pogo"));
    assert_eq!(c.pull_policy, PullPolicy::Never);
    assert_eq!(c.services_wait_timeout, 5);
    assert_eq!(c.auth_file, None, "an empty variable unsets the key");
}

#[test]
fn a_services_wait_timeout_beyond_a_day_is_refused_naming_the_key() {
    for bad in ["0", "86401", "18446744073709551615"] {
        let e = load_str(&format!("services_wait_timeout: {bad}\n"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("services_wait_timeout") && e.contains("between 1 and 86400 seconds"),
            "{e}"
        );
    }
    let c = load_str("services_wait_timeout: 86400\n", &env(&[])).unwrap();
    assert_eq!(c.services_wait_timeout, 86_400);
}

#[test]
fn an_empty_podman_means_the_default_in_the_file_as_in_the_environment() {
    let c = load_str("podman: ''\n", &env(&[])).unwrap();
    assert_eq!(c.podman, "podman");
    let c = load_str("podman: /opt/podman\n", &env(&[("POGO_PODMAN", "")])).unwrap();
    assert_eq!(c.podman, "podman");
}

#[test]
fn a_bad_pull_policy_in_the_environment_names_the_variable() {
    let err = load_str("", &env(&[("POGO_PULL_POLICY", "sometimes")])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("$POGO_PULL_POLICY"), "{msg}");
    assert!(msg.contains("if-not-present, always or never"), "{msg}");
}

#[test]
fn invalid_yaml_reports_file_line_and_column() {
    let err = load_str(
        "default_image: x\ncache_dir: /c\n  builds_dir: /b\n",
        &env(&[]),
    )
    .unwrap_err();
    match &err {
        ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 13), "{err}"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("/etc/pogo.yaml:3:13: invalid YAML"),
        "{err}"
    );
    // a type error is positioned too
    let err = load_str("default_image: x\nmounts:\n  - volume: [a, b]\n", &env(&[])).unwrap_err();
    assert!(err.to_string().starts_with("/etc/pogo.yaml:3:"), "{err}");
}

#[test]
fn an_unknown_key_is_named_with_the_closest_valid_key() {
    let err = load_str("default_imgae: x\n", &env(&[])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown key 'default_imgae'"), "{msg}");
    assert!(msg.contains("did you mean 'default_image'"), "{msg}");
    assert!(msg.starts_with("/etc/pogo.yaml:1:"), "{msg}");
}

#[test]
fn an_unknown_key_in_a_mount_suggests_a_mount_key() {
    let err = load_str(
        "mounts:\n  - volume: /a:/b\n    read_only: true\n",
        &env(&[]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown key 'read_only'"), "{msg}");
    assert!(msg.contains("did you mean 'readonly'"), "{msg}");
}

#[test]
fn an_empty_or_comment_only_file_means_defaults() {
    let c = load_str("# nothing yet\n", &env(&[])).unwrap();
    assert_eq!(c.default_image, None);
    assert_eq!(c.podman, "podman");
    assert!(c.cache_dir.ends_with("cache"));
    // as a Windows editor saves it: a byte-order mark first
    for text in ["\u{feff}# nothing yet\r\n", "\u{feff}", "\u{feff}---\n"] {
        let c = load_str(text, &env(&[])).unwrap();
        assert_eq!(c.default_image, None, "{text:?}");
    }
    let c = load_str("\u{feff}default_image: alpine\n", &env(&[])).unwrap();
    assert_eq!(c.default_image.as_deref(), Some("alpine"));
}

#[test]
fn a_key_in_the_wrong_place_is_not_suggested_as_itself() {
    let err = load_str("privileged: true\n", &env(&[])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown key 'privileged'"), "{msg}");
    assert!(!msg.contains("did you mean 'privileged'"), "{msg}");
    let err = load_str("mounts:\n  - volume: /a:/b\n    volumez: x\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("did you mean 'volume'"), "{err}");
}

#[test]
fn relative_mount_paths_are_refused_with_the_entry_named() {
    let err = load_str("mounts:\n  - volume: data:/mnt\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("mounts[0]"), "{err}");
    assert!(err.to_string().contains("must be absolute"), "{err}");
    assert!(
        err.to_string()
            .contains("./… (relative to the config file)"),
        "{err}"
    );
    let err = load_str("mounts:\n  - volume: /data:mnt\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("container path 'mnt'"), "{err}");
}

#[test]
fn paths_in_a_config_file_are_relative_to_its_directory() {
    let e = env(&[]);
    let p = PathBuf::from("/srv/ci/conf/pogo.yaml");
    let text = "working_dir: state/work\ncache_dir: ./state/cache\nauth_file: ../secrets/auth.json\n\
                runner_binary: bin/gitlab-runner\n\
                mounts:\n  - volume: ./fixtures:/mnt/fixtures\n  - volume: ../shared:/mnt/shared:ro\n";
    let c = finalize(parse(text, &p).unwrap(), Some(p.clone()), &e).unwrap();
    assert_eq!(c.working_dir, PathBuf::from("/srv/ci/conf/state/work"));
    assert_eq!(c.cache_dir, PathBuf::from("/srv/ci/conf/state/cache"));
    assert_eq!(
        c.auth_file,
        Some(PathBuf::from("/srv/ci/secrets/auth.json"))
    );
    assert_eq!(
        c.runner_binary,
        Some(PathBuf::from("/srv/ci/conf/bin/gitlab-runner"))
    );
    assert_eq!(c.mounts[0].host, PathBuf::from("/srv/ci/conf/fixtures"));
    assert_eq!(c.mounts[1].host, PathBuf::from("/srv/ci/shared"));
    assert_eq!(c.mounts[1].options, ["ro"]);
}

#[test]
fn a_relative_mount_in_a_directory_with_a_colon_is_refused_not_split() {
    let p = PathBuf::from("/srv/a:b/pogo.yaml");
    let raw = parse("mounts:\n  - volume: ./data:/data\n", &p).unwrap();
    let err = finalize(raw, Some(p), &env(&[])).unwrap_err().to_string();
    assert!(err.contains("host path '/srv/a:b/data'"), "{err}");
    assert!(err.contains("contains ':'"), "{err}");
}

#[test]
fn a_relative_path_from_the_environment_is_refused() {
    // no config file to be relative to
    let err = load_str("", &env(&[("POGO_WORKING_DIR", "work")])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("$POGO_WORKING_DIR"), "{msg}");
    assert!(msg.contains("'work' must be an absolute path"), "{msg}");
    let c = load_str("", &env(&[("POGO_WORKING_DIR", "~/w")])).unwrap();
    assert_eq!(c.working_dir, PathBuf::from("/home/u/w"));
}

#[test]
fn tilde_paths_expand_to_home() {
    let c = load_str(
        "auth_file: ~/.auth.json\nmounts:\n  - volume: ~/src:/src\n",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.auth_file, Some(PathBuf::from("/home/u/.auth.json")));
    assert_eq!(c.mounts[0].host, PathBuf::from("/home/u/src"));
}

#[test]
fn unbalanced_quotes_in_extra_arguments_name_the_tag() {
    let err = load_str("extra_arguments:\n  gpu: \"--env 'A=b\"\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("extra_arguments.gpu"), "{err}");
    assert!(err.to_string().contains("quotes"), "{err}");
}

#[test]
fn config_flag_pointing_nowhere_is_an_error_not_defaults() {
    let err = load(Some(Path::new("/nonexistent/pogo.yaml")), &env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    assert!(err.to_string().contains("--config"));
}

#[test]
fn mounts_and_arguments_follow_the_job_tags() {
    let c = load_str(ORIGINAL, &env(&[])).unwrap();
    let g = resolve::grants(&c, &["test".to_string()], "g/p");
    let vols: Vec<String> = g.mounts.iter().map(|m| m.volume_arg()).collect();
    assert_eq!(
        vols,
        vec![
            "/home/test/fixtures:/mnt/fixtures:ro",
            "/srv/always:/mnt/always"
        ]
    );
    assert!(g.extra_args.is_empty());

    let g = resolve::grants(&c, &["deploy".to_string(), "buildah".to_string()], "g/p");
    let vols: Vec<String> = g.mounts.iter().map(|m| m.volume_arg()).collect();
    assert_eq!(
        vols,
        vec!["/home/test/dir:/mnt/dir", "/srv/always:/mnt/always"]
    );
    assert_eq!(g.extra_args.len(), 6);

    let g = resolve::grants(&c, &[], "g/p");
    assert_eq!(g.mounts.len(), 1, "untagged jobs get only untagged mounts");
}

#[test]
fn print_redacts_credentials_in_arguments() {
    let c = load_str(
        "podman_args: --creds user:pw\nextra_arguments:\n  t: --password=hunter2 --env A=1\n",
        &env(&[]),
    )
    .unwrap();
    let y = to_yaml(&c).unwrap();
    assert!(!y.contains("user:pw"), "{y}");
    assert!(!y.contains("hunter2"), "{y}");
    // what print shows parses back as a valid config with the same arguments
    let back = parse(&y, Path::new("print")).unwrap();
    let back = finalize(back, None, &env(&[])).unwrap();
    assert_eq!(
        back.extra_arguments[0].args,
        ["--password=<redacted>", "--env", "A=1"]
    );
}

#[test]
fn arguments_that_widen_the_containers_reach_need_privileged_true() {
    let err = load_str(
        "extra_arguments:\n  buildah: '--security-opt label=disable --device /dev/fuse:rw'\n",
        &env(&[]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("extra_arguments.buildah"), "{msg}");
    assert!(msg.contains("--security-opt, --device"), "{msg}");
    assert!(msg.contains("privileged: true"), "{msg}");

    let c = load_str(
        "extra_arguments:\n  buildah:\n    args: --device /dev/fuse:rw\n    privileged: true\n",
        &env(&[]),
    )
    .unwrap();
    assert!(c.extra_arguments[0].privileged);
    assert!(
        to_yaml(&c).unwrap().contains("privileged: true"),
        "print shows privileged entries"
    );
}

#[test]
fn project_globs_limit_mounts_and_arguments_to_matching_projects() {
    let c = load_str(
        "mounts:\n  - volume: /srv/secrets:/secrets\n    tags: [deploy]\n    projects: ['ops/*']\n\
         extra_arguments:\n  deploy:\n    args: --env STAGE=prod\n    projects: ['ops/*', 'web/site']\n",
        &env(&[]),
    )
    .unwrap();
    let tags = ["deploy".to_string()];
    let ops = resolve::grants(&c, &tags, "ops/infra");
    assert_eq!(ops.mounts.len(), 1);
    assert_eq!(ops.extra_args, ["--env", "STAGE=prod"]);
    let other = resolve::grants(&c, &tags, "someone/else");
    assert!(
        other.mounts.is_empty(),
        "a tag alone no longer grants the mount"
    );
    assert!(other.extra_args.is_empty());
    assert_eq!(resolve::grants(&c, &tags, "web/site").extra_args.len(), 2);
}

#[test]
fn allowed_image_globs_are_validated_and_matched() {
    let c = load_str(
        "allowed_images: ['localhost/pogo-test/*', 'docker.io/library/*']\n",
        &env(&[]),
    )
    .unwrap();
    assert!(c.allowed_images.allows("localhost/pogo-test/bash:latest"));
    assert!(c.allowed_images.allows("docker.io/library/postgres:15"));
    assert!(!c.allowed_images.allows("evil.example.com/miner:1"));
    assert!(
        c.allowed_services.allows("anything"),
        "empty list allows all"
    );
    let err = load_str("allowed_images: ['[unclosed']\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("allowed_images"), "{err}");
}

#[test]
fn max_images_size_and_max_cache_size_are_mib_and_keep_images_pins_by_glob_but_an_empty_list_pins_nothing(
) {
    let c = load_str(
        "max_images_size: 2048\nkeep_images: ['registry.example.com/base/*']\n",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.max_images_size, 2048 * 1024 * 1024);
    assert!(c.keep_images.matches("registry.example.com/base/rust:1"));
    assert!(!c.keep_images.matches("docker.io/library/rust:1"));
    let d = load_str(
        "",
        &env(&[("POGO_MAX_IMAGES_SIZE", "10"), ("POGO_MAX_CACHE_SIZE", "3")]),
    )
    .unwrap();
    assert_eq!(d.max_images_size, 10 * 1024 * 1024);
    assert_eq!(d.max_cache_size, 3 * 1024 * 1024);
    assert_eq!(c.max_cache_size, 0, "no limit unless set");
    assert!(
        !d.keep_images.matches("anything"),
        "no patterns: nothing pinned"
    );
    let err = load_str("", &env(&[("POGO_MAX_IMAGES_SIZE", "20G")])).unwrap_err();
    assert!(err.to_string().contains("not a number of MiB"), "{err}");
    let err = load_str("keep_images: ['[unclosed']\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("keep_images"), "{err}");
    // pogo print shows them
    let y = crate::config::to_yaml(&c).unwrap();
    assert!(y.contains("max_images_size: 2048"), "{y}");
    assert!(y.contains("registry.example.com/base/*"), "{y}");
}

#[test]
fn a_misspelt_key_in_a_map_form_argument_entry_is_named() {
    let err = load_str(
        "extra_arguments:\n  t:\n    args: --env A=1\n    privilegd: true\n",
        &env(&[]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown key 'privilegd'"), "{msg}");
    assert!(msg.contains("did you mean 'privileged'"), "{msg}");
    assert!(msg.starts_with("/etc/pogo.yaml:4:"), "{msg}");
}

#[test]
fn concurrent_writers_never_leave_an_invalid_or_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pogo.yaml");
    let e = env(&[]);
    let a = format!(
        "default_image: alpine\nmounts:\n{}",
        "  - volume: /a:/a\n".repeat(400)
    );
    let b = format!(
        "default_image: fedora\nextra_arguments:\n{}",
        (0..400)
            .map(|i| format!("  t{i}: --env A{i}=1\n"))
            .collect::<String>()
    );
    write_atomic(&path, &a, &e).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for text in [&a, &b] {
            let (path, e) = (&path, &e);
            s.spawn(move || {
                for _ in 0..100 {
                    write_atomic(path, text, e).unwrap();
                }
            });
        }
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    text == a || text == b,
                    "a reader saw a mixed or truncated file"
                );
                reads += 1;
            }
            reads
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 10);
    });
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

#[test]
fn a_config_pogo_would_reject_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pogo.yaml");
    std::fs::write(&path, "default_image: alpine\n").unwrap();
    let err = write_atomic(&path, "default_imgae: x\n", &env(&[])).unwrap_err();
    assert!(
        err.to_string().contains("did you mean 'default_image'"),
        "{err}"
    );
    let err = write_atomic(&path, "extra_arguments:\n  t: --privileged\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("privileged: true"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "default_image: alpine\n"
    );
}

#[test]
fn shell_helper_image_and_allowed_pull_policies_parse_print_and_override() {
    let c = load_str("", &env(&[])).unwrap();
    assert_eq!(c.shell, Shell::Bash);
    assert_eq!(c.helper_image, None);
    assert_eq!(
        c.allowed_pull_policies,
        vec![PullPolicy::IfNotPresent],
        "default: only the configured policy"
    );
    let text = "shell: sh\nhelper_image: localhost/pogo-test/helper:latest\npull_policy: always\nallowed_pull_policies: [always, if-not-present, always]\n";
    let c = load_str(text, &env(&[])).unwrap();
    assert_eq!(c.shell, Shell::Sh);
    assert_eq!(
        c.helper_image.as_deref(),
        Some("localhost/pogo-test/helper:latest")
    );
    assert_eq!(
        c.allowed_pull_policies,
        vec![PullPolicy::Always, PullPolicy::IfNotPresent]
    );
    // `pogo print` shows them and loads back to the same config
    let printed = to_yaml(&c).unwrap();
    assert!(printed.contains("shell: sh"), "{printed}");
    assert!(printed.contains("allowed_pull_policies:"), "{printed}");
    let back = load_str(&printed, &env(&[])).unwrap();
    assert_eq!(
        (back.shell, back.helper_image, back.allowed_pull_policies),
        (
            c.shell,
            c.helper_image.clone(),
            c.allowed_pull_policies.clone()
        )
    );
    // the default list is not printed
    let plain = to_yaml(&load_str("", &env(&[])).unwrap()).unwrap();
    assert!(!plain.contains("allowed_pull_policies"), "{plain}");

    let e = env(&[("POGO_SHELL", "bash"), ("POGO_HELPER_IMAGE", "")]);
    let c = load_str(text, &e).unwrap();
    assert_eq!((c.shell, c.helper_image), (Shell::Bash, None));
    let err = load_str("", &env(&[("POGO_SHELL", "zsh")])).unwrap_err();
    assert!(err.to_string().contains("$POGO_SHELL"), "{err}");
    assert!(err.to_string().contains("use bash or sh"), "{err}");
}

#[test]
fn bad_shell_helper_image_and_pull_policy_lists_are_refused_with_the_fix() {
    let err = load_str("shell: fish\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("fish"), "{err}");
    let err = load_str("helper_image: '--privileged'\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("helper_image"), "{err}");
    let err = load_str("allowed_pull_policies: [sometimes]\n", &env(&[])).unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
    let err = load_str(
        "pull_policy: always\nallowed_pull_policies: [never]\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("allowed_pull_policies: must include pull_policy (always)"),
        "{err}"
    );
}

#[test]
fn a_symlinked_config_stays_a_symlink_and_its_target_gets_the_new_text() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles-pogo.yaml");
    std::fs::write(&real, "default_image: a\n").unwrap();
    let link = dir.path().join(".pogo.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_atomic(&link, "default_image: b\n", &env(&[])).unwrap();
    assert!(link.is_symlink(), "the link was replaced by a file");
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        "default_image: b\n"
    );
    // a link made before its target (relative, through a second link): the target is created
    let later = dir.path().join("later.yaml");
    let hop = dir.path().join("hop.yaml");
    std::os::unix::fs::symlink("later.yaml", &hop).unwrap();
    let dangling = dir.path().join(".pogo-new.yaml");
    std::os::unix::fs::symlink("hop.yaml", &dangling).unwrap();
    write_atomic(&dangling, "default_image: c\n", &env(&[])).unwrap();
    assert!(dangling.is_symlink() && hop.is_symlink());
    assert_eq!(
        std::fs::read_to_string(&later).unwrap(),
        "default_image: c\n"
    );
}

#[test]
fn a_tag_twice_under_extra_arguments_is_refused_with_its_position() {
    let err = load_str(
        "extra_arguments:\n  gpu: --env A=1\n  gpu: {args: --env B=2}\n",
        &env(&[]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("'gpu' is there twice"), "{msg}");
    assert!(msg.starts_with("/etc/pogo.yaml:"), "{msg}");
}

#[test]
fn the_readmes_gpu_recipe_loads_and_needs_privileged() {
    let ok = load_str(
        "extra_arguments:\n  gpu:\n    args: '--device nvidia.com/gpu=all'\n    privileged: true\n    projects: ['ml/*']\n",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(
        ok.extra_arguments[0].args,
        ["--device", "nvidia.com/gpu=all"]
    );
    let err = load_str(
        "extra_arguments:\n  gpu: '--device nvidia.com/gpu=all'\n",
        &env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("privileged: true"), "{err}");
}

#[test]
fn the_build_images_recipe_gives_its_projects_a_kept_volume_and_needs_no_privileged() {
    let c = load_str(
        "extra_arguments:\n  build-images:\n    project_volume: /var/lib/containers/\n    projects: ['images/*']\n",
        &env(&[]),
    )
    .unwrap();
    let e = &c.extra_arguments[0];
    assert!(e.args.is_empty() && !e.privileged);
    assert_eq!(e.project_volume.as_deref(), Some("/var/lib/containers"));
    let tags = ["build-images".to_string()];
    let g = resolve::grants(&c, &tags, "images/base");
    assert_eq!(g.project_volumes, ["/var/lib/containers"]);
    assert!(g.extra_args.is_empty());
    assert!(resolve::grants(&c, &tags, "web/site")
        .project_volumes
        .is_empty());
    assert!(resolve::grants(&c, &[], "images/base")
        .project_volumes
        .is_empty());
    let printed = to_yaml(&c).unwrap();
    assert!(
        printed.contains("project_volume: /var/lib/containers"),
        "{printed}"
    );
    for bad in ["var/lib", "/", "/a:b", "/a,b", "/a/../etc", ""] {
        let text = format!("extra_arguments:\n  b:\n    project_volume: '{bad}'\n");
        let err = load_str(&text, &env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("extra_arguments.b.project_volume"),
            "{bad}: {err}"
        );
    }
}
