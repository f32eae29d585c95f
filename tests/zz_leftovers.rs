//! Runs last (cargo runs test binaries in name order): after the whole
//! suite, nothing pogo created may remain in root's Podman.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn nothing_created_by_pogo_remains_after_the_test_suite() {
    require_podman!();
    let podman = PodmanCmd::default();
    let label = format!("{LABEL_MANAGED_BY}=pogo");
    // A job still running in another process (e.g. a developer's `pogo
    // exec`) owns objects for a moment; a leftover stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = podman.labelled(&label);
    while !found.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        found = podman.labelled(&label);
    }
    assert!(
        found.is_empty(),
        "left behind by pogo (label {label}): {found:?}"
    );
}
