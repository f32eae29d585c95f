//! After the whole suite, nothing pogo created for the suite's jobs may remain in root's
//! Podman. Ignored in the suite itself (it would race the tests still running); `make test`
//! runs it as its own step at the end: `cargo test --test suite leftovers:: -- --ignored`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;

/// Runner tokens the suite's jobs use (the harness, fault tests, `pogo exec`).
fn is_test_runner(runner: &str) -> bool {
    runner == "pogotest"
        || runner == "local"
        || runner.starts_with("faults")
        || runner.starts_with("kept")
}

/// pogo's objects of the suite's jobs created since `since` (unix seconds): other
/// pogo users of this machine (a developer's real jobs, a benchmark) are not the suite's
/// business.
fn suite_leftovers(podman: &PodmanCmd, since: u64) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a"]),
        ("pod", vec!["pod", "ps"]),
        ("volume", vec!["volume", "ls"]),
    ] {
        let mut args = args;
        args.extend(["--filter", "label=io.pogo.managed-by=pogo"]);
        let items = podman.json_list(&args);
        for item in items {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(item["Labels"].clone()).unwrap_or_default();
            let runner = labels
                .get("io.pogo.runner")
                .map(String::as_str)
                .unwrap_or("");
            let created: u64 = labels
                .get("io.pogo.created")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if is_test_runner(runner) && created >= since {
                let name = item["Names"][0]
                    .as_str()
                    .or(item["Name"].as_str())
                    .unwrap_or("?")
                    .to_string();
                found.push(format!("{kind} {name}"));
            }
        }
    }
    // secrets (multi-line service variables) have no label filter in podman 4.3: by name,
    // `pogo-<runner>-<job>-<slot>-svcI-envN`
    for name in podman.secret_names() {
        let runner = name
            .strip_prefix("pogo-")
            .and_then(|rest| rest.split('-').next())
            .unwrap_or("");
        if !name.contains("-svc") || !is_test_runner(runner) {
            continue;
        }
        // `secret ls` shows no creation time it can format; inspect does (gone meanwhile: fine)
        let out = podman.output(&[
            "secret",
            "inspect",
            &name,
            "--format",
            "{{.CreatedAt.Unix}}",
        ]);
        let created: Option<u64> = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        if out.status.success() && created.is_none_or(|c| c >= since) {
            found.push(format!("secret {name}"));
        }
    }
    found
}

#[test]
#[ignore = "a step of its own after the whole suite: make test runs it with --ignored"]
fn nothing_created_by_pogo_remains_after_the_test_suite() {
    require_podman!();
    let podman = PodmanCmd::default();
    // `make test` sets the start of the suite; run alone, look at the last three hours
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let since = std::env::var("POGO_TEST_SUITE_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(now.saturating_sub(3 * 3600));
    // A job still finishing in another process owns objects for a moment; a leftover stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = suite_leftovers(&podman, since);
    while !found.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        found = suite_leftovers(&podman, since);
    }
    assert!(
        found.is_empty(),
        "left behind by the suite's jobs: {found:?}"
    );
}
