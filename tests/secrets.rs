//! Secrets (variable values, the job token) never reach a command line or a file pogo writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use pogo::driver::Variable;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every readable `/proc/*/cmdline` that contains one of `markers`.
fn cmdlines_with(markers: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return hits;
    };
    for e in dir.flatten() {
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if markers.iter().any(|m| cmd.contains(m.as_str())) {
                hits.push(cmd);
            }
        }
    }
    hits
}

fn files_with(dir: &Path, markers: &[String], hits: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            files_with(&p, markers, hits);
        } else if meta.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).to_string();
            for m in markers {
                if text.contains(m.as_str()) {
                    hits.push(format!("{} contains {m}", p.display()));
                }
            }
        }
    }
}

#[test]
fn variable_values_and_the_job_token_never_appear_on_a_command_line_or_in_pogos_files() {
    require_podman!();
    let state_dir = tempfile::tempdir().unwrap();
    let mut env = TestEnv::new(&PogoConfig::default());
    env.use_state_dir(state_dir.path());
    let id = unique_id();
    let masked = format!("masked-marker-{id}-9f8e7d");
    let plain = format!("plain-marker-{id}-1a2b3c");
    let service_secret = format!("service-marker-{id}-5d6e");
    let mut job = env.job(
        &[],
        &[
            "test \"$MASKED_SECRET\" = \"$EXPECTED_MASKED\" || exit 7",
            "test -n \"$PLAIN_SECRET\" || exit 8",
            "sleep 2",
            "echo checked",
        ],
    );
    let token = job.token.clone();
    job.variables
        .push(Variable::masked("MASKED_SECRET", masked.clone()));
    job.variables
        .push(Variable::new("PLAIN_SECRET", plain.clone()));
    job.variables
        .push(Variable::new("EXPECTED_MASKED", masked.clone()));
    let mut service = httpd_service("web");
    service
        .variables
        .insert("SERVICE_PASSWORD".to_string(), service_secret.clone());
    job.services = vec![service];
    let markers = vec![
        masked.clone(),
        plain.clone(),
        service_secret.clone(),
        token.clone(),
    ];

    // watch every process's command line while the job runs
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let scanner = {
        let (stop, seen, markers) = (stop.clone(), seen.clone(), markers.clone());
        std::thread::spawn(move || {
            let mut scans = 0;
            while !stop.load(Ordering::Relaxed) {
                seen.lock().unwrap().extend(cmdlines_with(&markers));
                scans += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            scans
        })
    };
    let r = env.run(&job);
    stop.store(true, Ordering::Relaxed);
    let scans = scanner.join().unwrap();
    assert_success(&r);
    assert!(plain_log(&r).contains("\nchecked\n"), "{}", r.log);
    assert!(scans > 20, "the scanner ran only {scans} times");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "secrets on command lines: {seen:?}");

    // nothing pogo wrote holds a secret
    let mut hits = Vec::new();
    for d in [
        env.working_dir.as_path(),
        env.cache_dir.as_path(),
        state_dir.path(),
    ] {
        files_with(d, &markers, &mut hits);
    }
    assert!(hits.is_empty(), "{hits:?}");
    env.assert_no_leftovers();
}
