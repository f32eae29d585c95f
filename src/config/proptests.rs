//! Property tests: parsing and tag resolution never panic, and every error carries a position.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn env() -> HashMap<String, String> {
    [("HOME".to_string(), "/home/u".to_string())].into()
}

/// Fragments of pogo configs, real and broken, glued together at random.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("default_image: alpine\n".to_string()),
        Just("mounts:\n".to_string()),
        Just("  - volume: /a:/b\n".to_string()),
        Just("    tags: [x, y]\n".to_string()),
        Just("    readonly: true\n".to_string()),
        Just("    projects: ['g/*']\n".to_string()),
        Just("extra_arguments:\n".to_string()),
        Just("  x: --env 'A=b c'\n".to_string()),
        Just("  y:\n    args: --device /dev/fuse\n    privileged: true\n".to_string()),
        Just("pull_policy: never\n".to_string()),
        Just("allowed_images: ['*']\n".to_string()),
        Just("services_wait_timeout: 0\n".to_string()),
        Just("  - [\n".to_string()),
        Just("}\n".to_string()),
        Just(": :\n".to_string()),
        Just("\t\n".to_string()),
        Just("&a x: *a\n".to_string()),
        "[ -~\n]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_either_loads_or_fails_with_a_position(parts in proptest::collection::vec(fragment(), 0..12)) {
        let text: String = parts.concat();
        let path = PathBuf::from("/p.yaml");
        match parse(&text, &path) {
            Ok(raw) => {
                // finalize may refuse values, but never panics and names the origin
                if let Err(e) = finalize(raw, Some(path.clone()), &env()) {
                    prop_assert!(e.to_string().starts_with("/p.yaml: "), "{}", e);
                }
            }
            Err(ConfigError::Syntax { line, column, .. })
            | Err(ConfigError::UnknownKey { line, column, .. }) => {
                prop_assert!(line >= 1 && column >= 1);
            }
            Err(other) => prop_assert!(false, "unexpected error kind {other:?}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(text in "\\PC{0,200}") {
        let _ = parse(&text, Path::new("/p.yaml"));
    }

    #[test]
    fn what_print_shows_loads_back_to_the_same_config(parts in proptest::collection::vec(fragment(), 0..12)) {
        let text: String = parts.concat();
        let path = PathBuf::from("/p.yaml");
        let Ok(raw) = parse(&text, &path) else { return Ok(()) };
        let Ok(c) = finalize(raw, None, &env()) else { return Ok(()) };
        let printed = to_yaml(&c).expect("print");
        let back = finalize(parse(&printed, &path).expect("printed config parses"), None, &env())
            .expect("printed config is valid");
        prop_assert_eq!(back.mounts, c.mounts);
        prop_assert_eq!(back.extra_arguments, c.extra_arguments);
        prop_assert_eq!(back.default_image, c.default_image);
        prop_assert_eq!(back.pull_policy, c.pull_policy);
    }

    #[test]
    fn grants_only_ever_come_from_matching_entries(
        tags in proptest::collection::vec("[a-z]{1,3}", 0..4),
        project in "[a-z]{1,3}/[a-z]{1,3}",
    ) {
        let text = "mounts:\n  - volume: /all:/all\n  - volume: /t:/t\n    tags: [a, b]\n  - volume: /p:/p\n    tags: [a]\n    projects: ['ab/*']\nextra_arguments:\n  a: --env A=1\n  b:\n    args: --env B=1\n    projects: ['ab/*']\n";
        let c = finalize(parse(text, Path::new("/p.yaml")).expect("parses"), None, &env()).expect("valid");
        let g = resolve::grants(&c, &tags, &project);
        let vols: Vec<String> = g.mounts.iter().map(|m| m.container.clone()).collect();
        prop_assert!(vols.contains(&"/all".to_string()), "untagged mounts go to every job");
        let has = |t: &str| tags.iter().any(|x| x == t);
        prop_assert_eq!(vols.contains(&"/t".to_string()), has("a") || has("b"));
        prop_assert_eq!(vols.contains(&"/p".to_string()), has("a") && project.starts_with("ab/"));
        prop_assert_eq!(g.extra_args.contains(&"A=1".to_string()), has("a"));
        prop_assert_eq!(g.extra_args.contains(&"B=1".to_string()), has("b") && project.starts_with("ab/"));
    }
}
