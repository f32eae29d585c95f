use super::*;
use crate::config::model::{ExtraArgsEntry, PullPolicy};
use proptest::prelude::*;

const FILE: &str = "\
# pogo settings for my laptop
default_image: fedora:41   # what most jobs use
pull_policy: if-not-present

# host directories for jobs
mounts:
  # everyone gets the cache
  - volume: /srv/cache:/cache
  - volume: /home/me/fixtures:/fixtures   # test data
    tags: [test]
    readonly: true

extra_arguments:
  ci: '--env CI_LOCAL=1'   # marks local runs
  buildah:
    args: >-
      --device /dev/fuse:rw
    privileged: true
# end
";

fn edit(text: &str, e: Edit) -> String {
    apply(text, Path::new("/home/me/.pogo.yaml"), &e).unwrap()
}

fn mount(volume: &str, tags: &[&str]) -> MountRule {
    MountRule {
        volume: volume.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        projects: Vec::new(),
        readonly: false,
    }
}

/// A new mount rule `volume` for `tags`, as the add-mount form saves it.
fn add_mount(volume: &str, tags: &[&str]) -> Edit {
    Edit::Mount {
        index: None,
        rule: Some(mount(volume, tags)),
    }
}

fn set(key: &str, value: &str) -> Edit {
    Edit::Scalar {
        key: key.into(),
        value: Some(value.into()),
    }
}

/// The lines of `new` that are not in `old`, and the lines of `old` gone from `new`.
fn diff(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let o: Vec<&str> = old.lines().collect();
    let n: Vec<&str> = new.lines().collect();
    let added = n
        .iter()
        .filter(|l| !o.contains(l))
        .map(|l| l.to_string())
        .collect();
    let gone = o
        .iter()
        .filter(|l| !n.contains(l))
        .map(|l| l.to_string())
        .collect();
    (added, gone)
}

#[test]
fn changing_the_default_image_keeps_the_comment_on_its_line_and_every_other_line() {
    let new = edit(FILE, set("default_image", "registry.local/ci:2"));
    assert_eq!(
        diff(FILE, &new),
        (
            vec!["default_image: registry.local/ci:2   # what most jobs use".to_string()],
            vec!["default_image: fedora:41   # what most jobs use".to_string()]
        )
    );
}

#[test]
fn a_new_setting_goes_after_the_other_settings_and_nothing_else_moves() {
    let new = edit(
        FILE,
        set("auth_file", "/home/me/.config/containers/auth.json"),
    );
    let lines: Vec<&str> = new.lines().collect();
    assert_eq!(lines[3], "auth_file: /home/me/.config/containers/auth.json");
    assert_eq!(
        new.replace("auth_file: /home/me/.config/containers/auth.json\n", ""),
        FILE
    );
}

#[test]
fn removing_a_setting_removes_its_line_only() {
    let new = edit(
        FILE,
        Edit::Scalar {
            key: "pull_policy".into(),
            value: None,
        },
    );
    assert_eq!(new, FILE.replace("pull_policy: if-not-present\n", ""));
}

#[test]
fn an_invalid_pull_policy_is_refused_with_the_choices() {
    let e = apply(FILE, Path::new("/p.yaml"), &set("pull_policy", "sometimes")).unwrap_err();
    assert!(matches!(e, EditError::Refused(_)), "{e}");
    assert!(e.to_string().contains("if-not-present"), "{e}");
}

#[test]
fn a_new_mount_is_added_after_the_last_one_in_the_files_indentation() {
    let new = edit(FILE, add_mount("/data:/data", &["big", "gpu"]));
    assert_eq!(
        new,
        FILE.replace(
            "    readonly: true\n",
            "    readonly: true\n  - volume: /data:/data\n    tags: [big, gpu]\n"
        )
    );
}

#[test]
fn a_mount_added_to_an_indentless_list_lines_up_with_its_dashes() {
    let text = "mounts:\n- volume: /a:/a\n  tags: [x]\n";
    let new = edit(text, add_mount("/b:/b", &[]));
    assert_eq!(
        new,
        "mounts:\n- volume: /a:/a\n  tags: [x]\n- volume: /b:/b\n"
    );
}

#[test]
fn editing_a_mount_rewrites_that_mount_only() {
    let mut m = mount("/home/me/fixtures:/fixtures", &["test", "e2e"]);
    m.readonly = true;
    let new = edit(
        FILE,
        Edit::Mount {
            index: Some(1),
            rule: Some(m),
        },
    );
    let (added, gone) = diff(FILE, &new);
    assert_eq!(
        added,
        vec![
            "  - volume: /home/me/fixtures:/fixtures",
            "    tags: [test, e2e]"
        ]
    );
    assert_eq!(
        gone,
        vec![
            "  - volume: /home/me/fixtures:/fixtures   # test data",
            "    tags: [test]"
        ]
    );
    assert!(new.contains("  # everyone gets the cache\n  - volume: /srv/cache:/cache\n"));
}

#[test]
fn deleting_a_mount_removes_its_lines_and_the_last_one_takes_the_key_along() {
    let new = edit(
        FILE,
        Edit::Mount {
            index: Some(1),
            rule: None,
        },
    );
    assert_eq!(
        new,
        FILE.replace(
            "  - volume: /home/me/fixtures:/fixtures   # test data\n    tags: [test]\n    readonly: true\n",
            ""
        )
    );
    let new = edit(
        &new,
        Edit::Mount {
            index: Some(0),
            rule: None,
        },
    );
    assert!(!new.contains("mounts:"), "{new}");
    assert!(new.contains("# host directories for jobs\n"));
    assert_eq!(parse(&new, Path::new("/p")).unwrap().mounts, Vec::new());
}

#[test]
fn deleting_an_entry_whose_value_ends_in_a_non_ascii_letter_removes_just_its_lines() {
    let text =
        "mounts:\n  - volume: /srv/été:/été\nextra_arguments:\n  ci: --env A=é\n  b: --env B=1\n";
    let new = edit(
        text,
        Edit::Mount {
            index: Some(0),
            rule: None,
        },
    );
    assert_eq!(new, "extra_arguments:\n  ci: --env A=é\n  b: --env B=1\n");
    let new = edit(
        &new,
        Edit::Extra {
            tag: Some("ci".into()),
            new: None,
        },
    );
    assert_eq!(new, "extra_arguments:\n  b: --env B=1\n");
}

#[test]
fn the_first_mount_of_a_file_without_mounts_is_appended_as_a_block() {
    let text = "default_image: alpine # small\n";
    let new = edit(text, add_mount("/a:/a", &[]));
    assert_eq!(
        new,
        "default_image: alpine # small\nmounts:\n  - volume: /a:/a\n"
    );
}

#[test]
fn a_file_without_a_final_newline_gets_whole_lines() {
    let new = edit("mounts:\n  - volume: /a:/a", add_mount("/b:/b", &[]));
    assert_eq!(new, "mounts:\n  - volume: /a:/a\n  - volume: /b:/b\n");
    let new = edit("default_image: x", set("pull_policy", "always"));
    assert_eq!(new, "default_image: x\npull_policy: always\n");
}

#[test]
fn an_empty_or_comment_only_file_gets_the_setting_below_its_comments() {
    assert_eq!(
        edit("", set("default_image", "alpine")),
        "default_image: alpine\n"
    );
    assert_eq!(
        edit("# mine\n", set("default_image", "alpine")),
        "# mine\ndefault_image: alpine\n"
    );
    // just a document start, with a comment
    assert_eq!(
        edit("---\n# mine\n", set("default_image", "alpine")),
        "---\n# mine\ndefault_image: alpine\n"
    );
    assert_eq!(
        edit("---\n", add_mount("/b:/b", &[])),
        "---\nmounts:\n  - volume: /b:/b\n"
    );
}

#[test]
fn a_key_written_without_value_gets_the_value_after_its_colon() {
    let new = edit(
        "default_image:   # later\npull_policy: always\n",
        set("default_image", "alpine"),
    );
    assert_eq!(
        new,
        "default_image: alpine   # later\npull_policy: always\n"
    );
}

#[test]
fn extra_arguments_are_added_renamed_and_removed_in_place() {
    let added = edit(
        FILE,
        Edit::Extra {
            tag: None,
            new: Some((
                "gpu".into(),
                ExtraArgsRule::Args("--device nvidia.com/gpu=all".into()),
            )),
        },
    );
    assert_eq!(
        added,
        FILE.replace(
            "    privileged: true\n",
            "    privileged: true\n  gpu: '--device nvidia.com/gpu=all'\n"
        )
    );
    let renamed = edit(
        FILE,
        Edit::Extra {
            tag: Some("ci".into()),
            new: Some((
                "local".into(),
                ExtraArgsRule::Args("--env CI_LOCAL=2".into()),
            )),
        },
    );
    assert_eq!(
        renamed,
        FILE.replace(
            "  ci: '--env CI_LOCAL=1'   # marks local runs",
            "  local: '--env CI_LOCAL=2'   # marks local runs"
        )
    );
    let removed = edit(
        FILE,
        Edit::Extra {
            tag: Some("buildah".into()),
            new: None,
        },
    );
    assert_eq!(
        removed,
        FILE.replace(
            "  buildah:\n    args: >-\n      --device /dev/fuse:rw\n    privileged: true\n",
            ""
        )
    );
}

#[test]
fn an_entry_switching_to_the_map_form_is_written_as_a_nested_block() {
    let new = edit(
        FILE,
        Edit::Extra {
            tag: Some("ci".into()),
            new: Some((
                "ci".into(),
                ExtraArgsRule::Full(ExtraArgsEntry {
                    args: "--env CI_LOCAL=1".into(),
                    projects: vec!["group/*".into()],
                    privileged: false,
                    services: String::new(),
                    project_volume: None,
                }),
            )),
        },
    );
    assert!(
        new.contains("  ci:   # marks local runs\n    args: '--env CI_LOCAL=1'\n    projects: [group/*]\n  buildah:"),
        "{new}"
    );
}

#[test]
fn an_entry_with_service_arguments_keeps_them_and_they_load() {
    let new = edit(
        FILE,
        Edit::Extra {
            tag: Some("ci".into()),
            new: Some((
                "ci".into(),
                ExtraArgsRule::Full(ExtraArgsEntry {
                    args: "--memory 4g".into(),
                    projects: Vec::new(),
                    privileged: false,
                    services: "--memory 1g --cpus 1".into(),
                    project_volume: None,
                }),
            )),
        },
    );
    assert!(
        new.contains("    args: '--memory 4g'\n    services: '--memory 1g --cpus 1'\n"),
        "{new}"
    );
    let c = crate::config::load_text(
        &new,
        Some(Path::new("/p/pogo.yaml")),
        &std::collections::HashMap::new(),
    )
    .unwrap();
    let ci = c.extra_arguments.iter().find(|e| e.tag == "ci").unwrap();
    assert_eq!(ci.service_args, ["--memory", "1g", "--cpus", "1"]);
    assert_eq!(ci.args, ["--memory", "4g"]);
}

#[test]
fn a_tag_cannot_get_two_entries() {
    let e = apply(
        FILE,
        Path::new("/p.yaml"),
        &Edit::Extra {
            tag: None,
            new: Some(("ci".into(), ExtraArgsRule::Args("--env X=1".into()))),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("already has extra arguments"), "{e}");
}

#[test]
fn a_flow_style_list_is_rewritten_as_a_block_and_the_rest_stays() {
    let text =
        "# top\nmounts: [{volume: /a:/a, tags: [x]}]   # old style\ndefault_image: alpine # keep\n";
    let new = edit(text, add_mount("/b:/b", &[]));
    assert_eq!(
        new,
        "# top\nmounts:\n  - volume: /a:/a\n    tags: [x]\n  - volume: /b:/b\ndefault_image: alpine # keep\n"
    );
}

#[test]
fn a_block_scalar_value_is_replaced_whole() {
    let text = "default_image: >-\n  fedora:41\npull_policy: always\n";
    assert_eq!(
        edit(text, set("default_image", "alpine")),
        "default_image: alpine\npull_policy: always\n"
    );
}

#[test]
fn a_file_pogo_rejects_is_not_edited() {
    let e = apply(
        "mount:\n  - volume: /a:/a\n",
        Path::new("/p.yaml"),
        &set("default_image", "x"),
    )
    .unwrap_err();
    assert!(matches!(e, EditError::Invalid(_)), "{e}");
    assert!(e.to_string().contains("/p.yaml:1:1"), "{e}");
}

#[test]
fn editing_a_mount_that_is_not_there_is_refused() {
    let e = apply(
        FILE,
        Path::new("/p.yaml"),
        &Edit::Mount {
            index: Some(7),
            rule: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, EditError::Refused(_)), "{e}");
}

#[test]
fn non_ascii_text_before_the_edit_does_not_shift_it() {
    let text = "# café ☕ Übersicht\ndefault_image: \"bäckerei:1\" # ü\npull_policy: always\n";
    assert_eq!(
        edit(text, set("pull_policy", "never")),
        "# café ☕ Übersicht\ndefault_image: \"bäckerei:1\" # ü\npull_policy: never\n"
    );
    assert_eq!(
        edit(text, set("default_image", "x")),
        "# café ☕ Übersicht\ndefault_image: x # ü\npull_policy: always\n"
    );
}

#[test]
fn a_file_with_crlf_line_ends_keeps_them_on_every_line() {
    let text = FILE.replace('\n', "\r\n");
    let new = edit(&text, add_mount("/data:/data", &["big"]));
    assert!(!new.replace("\r\n", "").contains('\n'), "{new:?}");
    assert_eq!(
        new.replace("\r\n", "\n"),
        edit(FILE, add_mount("/data:/data", &["big"]))
    );
}

#[test]
fn numbers_are_written_as_numbers() {
    let new = edit(FILE, set("keep_failed", "30"));
    assert!(new.contains("keep_failed: 30\n"));
    assert_eq!(parse(&new, Path::new("/p")).unwrap().keep_failed, Some(30));
    // typed with a leading zero: still the number, not a string pogo would refuse
    let new = edit(FILE, set("keep_failed", " 010 "));
    assert!(new.contains("keep_failed: 10\n"), "{new}");
    assert_eq!(parse(&new, Path::new("/p")).unwrap().keep_failed, Some(10));
    assert_eq!(
        parse(&edit(FILE, set("pull_policy", "always")), Path::new("/p"))
            .unwrap()
            .pull_policy,
        Some(PullPolicy::Always)
    );
}

proptest! {
    /// Whatever a user types into a field, the file reads back with exactly that value and
    /// every other line unchanged.
    #[test]
    fn any_typed_value_reads_back_exactly(v in "\\PC{0,40}") {
        let new = edit(FILE, set("default_image", &v));
        let raw = parse(&new, Path::new("/p")).unwrap();
        prop_assert_eq!(raw.default_image.as_deref(), Some(v.as_str()));
        let (added, gone) = diff(FILE, &new);
        prop_assert!(added.len() <= 1 && gone.len() == 1, "{:?} {:?}", added, gone);
    }

    #[test]
    fn any_mount_and_tag_text_reads_back_exactly(
        host in "/[^\\x00-\\x1f:]{0,20}",
        tag in "[^\\s,\\x00-\\x1f]{1,12}",
        project in "\\PC{1,15}",
    ) {
        let rule = MountRule {
            volume: format!("{host}:/in"),
            tags: vec![tag],
            projects: vec![project],
            readonly: true,
        };
        let new = edit(FILE, Edit::Mount { index: None, rule: Some(rule.clone()) });
        let raw = parse(&new, Path::new("/p")).unwrap();
        prop_assert_eq!(raw.mounts.last(), Some(&rule));
        let (_, gone) = diff(FILE, &new);
        prop_assert!(gone.is_empty(), "{:?}", gone);
    }

    /// Any series of form saves leaves the user's comments in place and never fails on the
    /// layouts people write.
    #[test]
    fn a_series_of_edits_keeps_the_comments_and_always_applies(
        ops in proptest::collection::vec((0u8..6, 0usize..4, "[a-zé日]{1,6}"), 1..12)
    ) {
        let mut text = FILE.to_string();
        for (op, i, word) in ops {
            let raw = parse(&text, Path::new("/p")).unwrap();
            let e = match op {
                0 => Edit::Mount { index: None, rule: Some(mount(&format!("/{word}:/{word}"), &[&word])) },
                1 if !raw.mounts.is_empty() => Edit::Mount { index: Some(i % raw.mounts.len()), rule: None },
                2 if !raw.mounts.is_empty() => Edit::Mount { index: Some(i % raw.mounts.len()), rule: Some(mount("/x:/y", &[])) },
                3 if !raw.extra_arguments.contains_key(&word) => Edit::Extra { tag: None, new: Some((word.clone(), ExtraArgsRule::Args(format!("--env {word}=1")))) },
                4 if !raw.extra_arguments.is_empty() => {
                    let t = raw.extra_arguments.keys().nth(i % raw.extra_arguments.len()).cloned();
                    Edit::Extra { tag: t, new: None }
                }
                _ => set("default_image", &word),
            };
            text = edit(&text, e);
        }
        for comment in ["# pogo settings for my laptop", "# host directories for jobs", "# end"] {
            prop_assert!(text.contains(comment), "{} lost:\n{}", comment, text);
        }
    }
}

#[test]
fn an_entry_with_a_project_volume_is_written_with_it() {
    let new = edit(
        FILE,
        Edit::Extra {
            tag: None,
            new: Some((
                "build-images".into(),
                ExtraArgsRule::Full(ExtraArgsEntry {
                    projects: vec!["images/*".into()],
                    project_volume: Some("/var/lib/containers".into()),
                    ..ExtraArgsEntry::default()
                }),
            )),
        },
    );
    assert!(
        new.contains("  build-images:\n    args: ''\n    projects: [images/*]\n    project_volume: /var/lib/containers\n"),
        "{new}"
    );
}
