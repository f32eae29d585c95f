//! The tests of the model: merging records and containers into job rows, filters, numbers, times.

use super::*;

#[test]
fn times_show_as_a_clock_in_the_given_zone() {
    // 2027-01-15T08:00:00Z
    let t = 1_800_000_000_000 + 999;
    assert_eq!(clock(t, 0), "08:00:00");
    assert_eq!(clock(t, 3600), "09:00:00");
    assert_eq!(clock(t, -(8 * 3600 + 30 * 60)), "23:30:00");
    assert_eq!(day(t, 0), "2027-01-15");
    assert_eq!(day(t, -(9 * 3600)), "2027-01-14");
}

#[test]
fn a_garbled_time_past_year_9999_shows_as_its_last_second_instead_of_crashing() {
    assert_eq!(clock(u64::MAX, 0), "23:59:59");
    assert_eq!(day(999_999_999_999_999, 3600), "9999-12-31");
}

#[test]
fn the_local_offset_is_read_from_date_plus_z() {
    assert_eq!(parse_utc_offset("+0100\n"), Some(3600));
    assert_eq!(parse_utc_offset("-0530"), Some(-(5 * 3600 + 30 * 60)));
    assert_eq!(parse_utc_offset("+0000"), Some(0));
    assert_eq!(parse_utc_offset("CET"), None);
    assert_eq!(parse_utc_offset("+1"), None);
    assert_eq!(parse_utc_offset(""), None);
}

fn rec(key: &str, started: u64, ended: Option<u64>) -> JobRecord {
    JobRecord {
        key: key.into(),
        id: key.into(),
        started,
        ended,
        prepared: true,
        ..JobRecord::default()
    }
}

#[test]
fn a_finished_job_stays_listed_for_an_hour_then_goes() {
    let now = 100_000;
    let recent = rec("a", now - 100, Some(now - 50));
    let old = rec("b", now - 9000, Some(now - KEEP_FINISHED_SECS - 1));
    let rows = merge_jobs(&[recent, old], &[], &HashMap::new(), now);
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, vec!["a"]);
}

#[test]
fn a_job_stopped_outside_pogo_shows_a_system_failure_at_its_stage() {
    let mut r = rec("a", 10, Some(20));
    r.stage = Some("after_script".into());
    r.result = Some(Outcome::Failed);
    r.failure = Some("build_script (system failure)".into());
    let rows = merge_jobs(&[r], &[], &HashMap::new(), 30);
    assert_eq!(rows[0].state, "failed (system)");
    assert_eq!(rows[0].stage, "build_script");
    assert!(!rows[0].running);
}

#[test]
fn containers_without_a_record_still_show_from_their_labels() {
    let c = PsContainer {
        names: vec!["pogo-r-7-0-build".into()],
        state: "running".into(),
        image: "alpine".into(),
        labels: HashMap::from([
            ("io.pogo.job-key".to_string(), "pogo-r-7-0".to_string()),
            ("io.pogo.job-id".to_string(), "7".to_string()),
            ("io.pogo.project".to_string(), "g/p".to_string()),
        ]),
        created: 5,
        ..PsContainer::default()
    };
    let rows = merge_jobs(&[], &[c], &HashMap::new(), 10);
    assert_eq!(rows[0].id, "7");
    assert_eq!(rows[0].project, "g/p");
    assert_eq!(rows[0].state, "running");
    assert_eq!(rows[0].container.as_deref(), Some("pogo-r-7-0-build"));
}

#[test]
fn the_filter_ignores_case_and_needs_every_word_somewhere() {
    assert!(filter_matches("", &["anything"]));
    assert!(filter_matches("  ", &[]));
    assert!(filter_matches("APP", &["group/app", "build"]));
    assert!(filter_matches("app build", &["group/app", "build"]));
    assert!(!filter_matches("app deploy", &["group/app", "build"]));
    assert!(!filter_matches("x", &[]));
}

#[test]
fn the_jobs_filter_looks_at_id_project_name_stage_image_and_state() {
    let mut r = rec("k", 1, None);
    r.id = "1201".into();
    r.project = "group/app".into();
    r.name = "lint".into();
    r.stage = Some("build_script".into());
    r.image = Some("node:22".into());
    r.result = Some(Outcome::Failed);
    r.exit_code = Some(2);
    let row = &merge_jobs(&[r], &[], &HashMap::new(), 2)[0];
    for q in [
        "120",
        "Group/App",
        "lint",
        "build_s",
        "node",
        "exit 2",
        "failed",
    ] {
        assert!(row.matches(q), "{q}");
    }
    assert!(!row.matches("python"));
}

#[test]
fn podmans_numbers_are_read_in_their_units() {
    assert_eq!(percent("97.30%"), Some(97.3));
    assert_eq!(percent("--"), None);
    assert_eq!(bytes("1.45MB"), Some(1.45e6));
    assert!((bytes("520.2kB").unwrap() - 520.2e3).abs() < 1e-6);
    assert_eq!(bytes("2GiB"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
    assert_eq!(bytes("0B"), Some(0.0));
    assert_eq!(bytes("12 parsecs"), None);
}

#[test]
fn the_history_keeps_the_last_samples_of_each_container() {
    let mut m = Model::new(0, false);
    for i in 0..HISTORY + 5 {
        m.add_stats(vec![StatEntry {
            name: "c".into(),
            cpu: format!("{i}%"),
            mem: "1MB".into(),
        }]);
    }
    let h = &m.history["c"];
    assert_eq!(h.cpu.len(), HISTORY);
    assert_eq!(h.cpu.front(), Some(&5.0));
    assert_eq!(h.mem.back(), Some(&1e6));
}

#[test]
fn elapsed_times_read_like_a_clock() {
    assert_eq!(format_elapsed(42), "42s");
    assert_eq!(format_elapsed(185), "3m05s");
    assert_eq!(format_elapsed(3720), "1h02m");
}
