//! The tests of the effects: the shell's arguments, saving a log, saving a form's edit.

use super::*;
use crate::config::edit::Edit;
use crate::config::model::{ExtraArgsRule, MountRule};

#[test]
fn the_shell_starts_in_the_project_dir_with_the_jobs_variables_and_runs_no_job_text() {
    let hostile = "/builds/x\"; rm -rf / #$(id)";
    let a = shell_args(
        "pogo-r-1-0-build",
        Some(Path::new("/w/jobs/pogo-r-1-0.env")),
        Some(hostile),
    );
    assert_eq!(
        &a[..3],
        ["exec", "-it", "--env-file=/w/jobs/pogo-r-1-0.env"]
    );
    assert_eq!(a[3], "pogo-r-1-0-build");
    // the directory is the script's $1, an argument of its own, never part of its code
    assert_eq!(a.last().map(String::as_str), Some(hostile));
    assert!(!a[6].contains("builds"), "{}", a[6]);
    let plain = shell_args("c", None, None);
    assert!(!plain.iter().any(|x| x.starts_with("--env-file")));
    assert_eq!(plain.last().map(String::as_str), Some(""));
}

const FILE: &str =
    "# laptop runner\ndefault_image: alpine   # small\nmounts:\n  - volume: /srv:/srv\n";

fn env(home: &Path) -> HashMap<String, String> {
    HashMap::from([("HOME".to_string(), home.display().to_string())])
}

fn add_mount(volume: &str) -> Edit {
    Edit::Mount {
        index: None,
        rule: Some(MountRule {
            volume: volume.into(),
            tags: vec!["data".into()],
            projects: vec![],
            readonly: false,
        }),
    }
}

#[test]
fn s_saves_a_private_copy_of_the_log_next_to_earlier_ones_with_timestamps_if_shown() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let key = "pogo-laptop-7-0";
    std::fs::write(state.log_path(key), "one\ntwo\n").unwrap();
    std::fs::write(state.times_path(key), "0 0\n4 61000\n").unwrap();
    let msg = save_log_in(dir.path(), &state, key, "7", None);
    let plain = dir.path().join("pogo-job-7.log");
    assert_eq!(msg, format!("log saved to {}", plain.display()));
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "one\ntwo\n");
    let msg = save_log_in(dir.path(), &state, key, "7", Some(0));
    let stamped = dir.path().join("pogo-job-7-1.log");
    assert_eq!(
        msg,
        format!("log saved to {} with timestamps", stamped.display())
    );
    assert_eq!(
        std::fs::read_to_string(&stamped).unwrap(),
        "1970-01-01 00:00:00 one\n1970-01-01 00:01:01 two\n"
    );
    for f in [plain, stamped] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    // a dangling symlink where the next name would be is skipped, not followed
    std::os::unix::fs::symlink("/nonexistent/x", dir.path().join("pogo-job-7-2.log")).unwrap();
    let msg = save_log_in(dir.path(), &state, key, "7", None);
    assert!(msg.ends_with("pogo-job-7-3.log"), "{msg}");
    assert_eq!(
        save_log_in(dir.path(), &state, "pogo-laptop-8-0", "8", None),
        "job 8 has no log copy to save"
    );
}

#[test]
fn a_saved_form_keeps_the_files_comments_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pogo.yaml");
    std::fs::write(&path, FILE).unwrap();
    let host = dir.path().display().to_string();
    let edit = add_mount(&format!("{host}:/data"));
    let msg = save_config(&path, &env(dir.path()), &edit, FILE, Some(dir.path())).unwrap();
    assert!(msg.starts_with("saved "), "{msg}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("{FILE}  - volume: {host}:/data\n    tags: [data]\n")
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(".pogo.yaml")]);
}

#[test]
fn a_save_is_refused_when_the_file_changed_on_disk_since_the_form_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pogo.yaml");
    let elsewhere = format!("{FILE}pull_policy: always\n");
    std::fs::write(&path, &elsewhere).unwrap();
    let e = save_config(&path, &env(dir.path()), &add_mount("/a:/a"), FILE, None).unwrap_err();
    assert!(
        matches!(&e, SaveProblem::Refused(m) if m.contains("changed on disk")),
        "{e:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), elsewhere);
}

#[test]
fn a_missing_host_directory_is_a_warning_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pogo.yaml");
    std::fs::write(&path, FILE).unwrap();
    let missing = dir.path().join("nope");
    let e = save_config(
        &path,
        &env(dir.path()),
        &add_mount(&format!("{}:/x", missing.display())),
        FILE,
        Some(&missing),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SaveProblem::Warning(m) if m.contains("does not exist")),
        "{e:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
}

#[test]
fn the_first_save_creates_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pogo.yaml");
    let edit = Edit::Scalar {
        key: "default_image".into(),
        value: Some("debian:13".into()),
    };
    save_config(&path, &env(dir.path()), &edit, "", None).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "default_image: debian:13\n"
    );
}

#[test]
fn a_save_pogo_would_reject_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pogo.yaml");
    std::fs::write(&path, FILE).unwrap();
    // reach-widening arguments without `privileged: true` (the form refuses this too)
    let edit = Edit::Extra {
        tag: None,
        new: Some((
            "fuse".into(),
            ExtraArgsRule::Args("--device /dev/fuse".into()),
        )),
    };
    let e = save_config(&path, &env(dir.path()), &edit, FILE, None).unwrap_err();
    assert!(
        matches!(&e, SaveProblem::Refused(m) if m.contains("privileged")),
        "{e:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
}
